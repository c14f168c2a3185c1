package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@code troupe driver --dir} never takes over (and so never deletes) a directory Troupe did not create. */
class DriverCommandTest {
    @Test
    @Timeout(30)
    void shouldRefuseAForeignDirectoryAndLeaveItUntouched(@TempDir Path tmp) throws Exception {
        Path foreign = Files.createDirectory(tmp.resolve("home"));
        Files.writeString(foreign.resolve("thesis.tex"), "years of work");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = TroupeCli.run(new String[] {"driver", "--dir", foreign.toString()},
            new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        String message = err.toString(StandardCharsets.UTF_8);
        assertEquals(2, code, message);
        assertTrue(message.contains(foreign.toString()) && message.contains("not created by Troupe"), message);
        assertEquals("years of work", Files.readString(foreign.resolve("thesis.tex")));
    }
}
