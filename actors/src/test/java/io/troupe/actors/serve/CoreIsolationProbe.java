package io.troupe.actors.serve;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.BitSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The child process of {@link CoreIsolationTest} (a test's own JVM must not have its threads pinned):
 * serves with the step thread isolated, answers one request, and prints the CPUs (/proc's
 * {@code Cpus_allowed_list}) of this process before, of the step, events and main threads while the
 * server runs, and of every thread after it closed, one {@code key cpus} line each.
 */
final class CoreIsolationProbe {
    private static final Pattern ALLOWED = Pattern.compile("Cpus_allowed_list:\\s*(\\S+)");

    private CoreIsolationProbe() {
    }

    public static void main(String[] args) throws Exception {
        System.out.println("before " + list(Path.of("/proc/thread-self")));
        try (InferenceServer server = InferenceServer.start(ServeTestSupport.weights(3),
            ServeTestSupport.settings().withIsolateStepCore(true))) {
            int status = ServeTestSupport.post(server.port(), "{\"prompt\":\"to be\",\"max_tokens\":4}").statusCode();
            System.out.println("status " + status);
            System.out.println("step " + list(threadNamed("troupe-serve-st")));
            System.out.println("events " + list(threadNamed("troupe-serve-ev")));
            System.out.println("main " + list(Path.of("/proc/thread-self")));
        }
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path t : tasks) {
                try {
                    System.out.println("after " + list(t) + " " + Files.readString(t.resolve("comm")).trim());
                } catch (IOException ended) {
                    // a thread that ended since the listing
                }
            }
        }
        System.out.flush();
        System.exit(0);                                          // pekko's and the HTTP client's daemon threads
    }

    /** A thread's (or the process's) Cpus_allowed_list, e.g. "0-3,6". */
    private static String list(Path task) throws IOException {
        if (task == null) {
            return "none";
        }
        Matcher m = ALLOWED.matcher(Files.readString(task.resolve("status")));
        return m.find() ? m.group(1) : "none";
    }

    private static Path threadNamed(String prefix) throws IOException {
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path t : tasks) {
                if (Files.readString(t.resolve("comm")).trim().startsWith(prefix)) {
                    return t;
                }
            }
        }
        return null;
    }

    /** The CPUs of a Cpus_allowed_list ("0-3,6"). */
    static BitSet cpus(String list) {
        BitSet cpus = new BitSet();
        for (String part : list.split(",")) {
            String[] range = part.split("-");
            int from = Integer.parseInt(range[0]);
            int to = range.length > 1 ? Integer.parseInt(range[1]) : from;
            cpus.set(from, to + 1);
        }
        return cpus;
    }
}
