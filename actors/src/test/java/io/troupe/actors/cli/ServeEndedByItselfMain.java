package io.troupe.actors.cli;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

/**
 * {@code troupe serve} whose server is ended from inside the process, with no stop asked for, once a line
 * {@code end} arrives on stdin: how {@link ServeEndedProcessTest} makes a server end by itself.
 */
public final class ServeEndedByItselfMain {
    private ServeEndedByItselfMain() {
    }

    public static void main(String[] args) {
        int code = ServeCommand.run(args, System.out, System.err, server -> {
            Thread ender = new Thread(() -> {
                try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                    for (String line = in.readLine(); line != null; line = in.readLine()) {
                        if (line.equals("end")) {
                            server.close();
                            return;
                        }
                    }
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }, "end-from-stdin");
            ender.setDaemon(true);
            ender.start();
        });
        System.out.flush();
        System.exit(code);
    }
}
