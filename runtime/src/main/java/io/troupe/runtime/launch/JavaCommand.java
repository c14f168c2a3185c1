package io.troupe.runtime.launch;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;

/**
 * The command line of a child JVM that runs a Troupe main class: this JVM's {@code java}, its
 * {@code --add-opens}/{@code --add-exports} flags (which Agrona and Aeron need), extra JVM options,
 * this JVM's classpath, the main class and its arguments.
 */
public final class JavaCommand {
    private JavaCommand() {
    }

    public static List<String> of(Class<?> mainClass, List<String> jvmOptions, List<String> args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command().orElse(System.getProperty("java.home") + "/bin/java"));
        List<String> in = ManagementFactory.getRuntimeMXBean().getInputArguments();
        for (int i = 0; i < in.size(); i++) {
            String a = in.get(i);
            if (a.startsWith("--add-opens") || a.startsWith("--add-exports")) {
                cmd.add(a);
                if (!a.contains("=") && i + 1 < in.size()) {
                    cmd.add(in.get(++i));
                }
            }
        }
        cmd.addAll(jvmOptions);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass.getName());
        cmd.addAll(args);
        return cmd;
    }
}
