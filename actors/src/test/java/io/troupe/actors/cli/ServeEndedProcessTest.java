package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.launch.ChildJvm;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code troupe serve} as its own process whose server ends with no stop asked for (its actor system
 * terminates, here ended from inside by {@link ServeEndedByItselfMain}): it does not pass for a planned stop,
 * but says on stderr why it ended and exits {@link ServeCommand#ENDED}.
 */
@Timeout(180)
class ServeEndedProcessTest {
    private static final Pattern BOUND = Pattern.compile("on http://127\\.0\\.0\\.1:(\\d+)");

    @TempDir
    Path tmp;

    @Test
    void shouldExitNonZeroSayingWhyWhenTheServerEndsByItself() throws Exception {
        Path run = tmp.resolve("run");
        ByteArrayOutputStream said = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(said, true, StandardCharsets.UTF_8);
        assertEquals(0, TroupeCli.run(new String[] {"train", "--model", "tiny", "--layout", "1x1", "--steps", "5",
            "--checkpoint-interval", "5", "--eval-interval", "0", "--out", run.toString()}, ps, ps),
            said.toString(StandardCharsets.UTF_8));
        try (ChildJvm server = ChildJvm.start(ServeEndedByItselfMain.class, List.of("-Xmx512m", "-XX:+UseSerialGC"),
            List.of("--checkpoint", run.toString(), "--port", "0", "--isolate-step-core", "false"))) {
            server.awaitMatch(BOUND, 60_000);
            server.send("end");
            int code = server.waitFor(60_000);
            String log = server.output();
            System.out.print(log);
            assertEquals(ServeCommand.ENDED, code, "a server that ended by itself is no planned stop:\n" + log);
            assertTrue(log.contains("troupe serve: the server ended by itself: its actor system terminated with no"
                + " stop asked for; 0 request(s) in flight were ended"), log);
            assertFalse(log.contains("troupe serve: stopped"), log);
        }
    }
}
