package io.troupe.actors;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The user-facing text of the repository (README.md, docs/ and scripts/) describes the product and what was measured,
 * not how it was developed: no work sessions, issue numbers, people's roles, development tools or paths of the machines
 * it was built on. History belongs in git.
 *
 * <p>docs/design.md and docs/conventions.md (the team's agreements) are checked too. Surefire runs this test with the
 * actors module as working directory, so the repository root is its parent.
 */
class DocsAboutTheProductTest {

    /** One forbidden kind of text: a name for the failure message and the pattern that finds it. */
    private record Forbidden(String what, Pattern pattern) {
        static Forbidden of(String what, String regex) {
            return new Forbidden(what, Pattern.compile(regex, Pattern.CASE_INSENSITIVE));
        }
    }

    private static final List<Forbidden> FORBIDDEN = List.of(
        // "session" alone is a product word (an Aeron session id, an ssh session); a numbered or dated work session is
        // not.
        Forbidden.of("a work session", "\\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|this|that|"
            + "earlier|previous|later|last|next|each|two|three|several|the) sessions?\\b(?![- ]?id)"),
        Forbidden.of("a work session", "\\bsessions\\b"),
        Forbidden.of("an issue number", "\\bissues?\\s*#?\\d+|(^|\\s)#\\d+\\b"),
        Forbidden.of("an issue as the source", "\\b(the|this|that|an|its|closing note of) issue\\b"),
        Forbidden.of("a development machine path", "/work/|/root/|/tmp/bash_jobs|\\.\\./shared|\\.library"),
        Forbidden.of("a development role",
            "\\b(other|a|the|several|one|two) helpers?\\b|helpers'|\\bthe lead\\b|\\blead's\\b"),
        Forbidden.of("a development tool",
            "\\bdevice tool\\b|\\bbench\\.lock\\b|\\bflock\\b|\\bsandbox\\b|\\bworktree\\b"
            + "|\\bGPU (was )?lent\\b|\\blent (a|to|the)\\b|agent's machine"),
        Forbidden.of("a date of development", "\\b20\\d\\d-\\d\\d-\\d\\d\\b"),
        Forbidden.of("a development round", "\\b(this|that|earlier|previous) round\\b"));

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void shouldDescribeTheProductNotItsDevelopment() throws IOException {
        Path root = Path.of(System.getProperty("user.dir")).getParent();
        List<Path> files = new ArrayList<>();
        files.add(root.resolve("README.md"));
        for (String dir : List.of("docs", "scripts")) {
            try (Stream<Path> walk = Files.walk(root.resolve(dir))) {
                walk.filter(Files::isRegularFile)
                    .filter(p -> !p.toString().endsWith(".svg"))
                    .forEach(files::add);
            }
        }
        assertTrue(files.size() > 5, "found README.md, docs/ and scripts/ under " + root + ": " + files);

        List<String> findings = new ArrayList<>();
        for (Path file : files) {
            List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            for (int i = 0; i < lines.size(); i++) {
                for (Forbidden f : FORBIDDEN) {
                    var m = f.pattern().matcher(lines.get(i));
                    if (m.find()) {
                        findings.add(root.relativize(file) + ":" + (i + 1) + ": " + f.what() + " (\""
                            + m.group().strip()
                            + "\"): " + lines.get(i).strip());
                    }
                }
            }
        }
        assertTrue(findings.isEmpty(), findings.size() + " line(s) describe development, not the product:\n"
            + String.join("\n", findings));
    }
}
