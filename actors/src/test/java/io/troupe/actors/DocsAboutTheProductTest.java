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
        Forbidden.of("a development round", "\\b(this|that|earlier|previous) round\\b"),
        // figures describe the product as built; a comparison names the alternative measured, not a past build
        Forbidden.of("a past build as the baseline",
            "\\bwhat changed\\b|\\b(the|an?|earlier|previous|old|instrumented) builds? before\\b|\\bearlier builds?\\b"
            + "|\\b(previous|old|instrumented) build\\b|\\bbefore (these|the|this) changes?\\b|\\bthe figures before\\b"
            + "|\\bearlier measurements\\b"));

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

    /** A test named in the text, {@code FooTest} or {@code FooTest.shouldBar}: the evidence a claim points to. */
    private static final Pattern CITED_TEST =
        Pattern.compile("\\b([A-Z][A-Za-z0-9]*Test)(?:\\.([a-z][A-Za-z0-9]*))?\\b");

    /**
     * Every test class (and test method) README.md and docs/ cite as evidence exists under some module's src/test, so
     * a renamed or split test cannot leave a claim pointing at nothing. {@code CudaXTest} is the docs' placeholder.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldCiteTestsThatExist() throws IOException {
        Path root = Path.of(System.getProperty("user.dir")).getParent();
        java.util.Map<String, String> sources = new java.util.HashMap<>();
        for (String module : List.of("runtime", "collectives", "models", "actors", "bench", "dist")) {
            Path tests = root.resolve(module).resolve("src/test");
            if (!Files.isDirectory(tests)) {
                continue;
            }
            try (Stream<Path> walk = Files.walk(tests)) {
                for (Path f : walk.filter(x -> x.toString().endsWith(".java")).toList()) {
                    String name = f.getFileName().toString();
                    sources.put(name.substring(0, name.length() - ".java".length()), Files.readString(f));
                }
            }
        }
        assertTrue(sources.size() > 50, "found the test sources under " + root + ": " + sources.size());
        List<Path> files = new ArrayList<>();
        files.add(root.resolve("README.md"));
        try (Stream<Path> walk = Files.walk(root.resolve("docs"))) {
            walk.filter(p -> p.toString().endsWith(".md")).forEach(files::add);
        }
        List<String> missing = new ArrayList<>();
        for (Path file : files) {
            List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            for (int i = 0; i < lines.size(); i++) {
                var m = CITED_TEST.matcher(lines.get(i));
                while (m.find()) {
                    String cls = m.group(1);
                    String method = m.group(2);
                    String source = sources.get(cls);
                    if (cls.equals("CudaXTest") || method != null && method.equals("java")) {
                        continue;
                    }
                    if (source == null) {
                        missing.add(root.relativize(file) + ":" + (i + 1) + ": no test class " + cls);
                    } else if (method != null && !source.contains(" " + method + "(")) {
                        missing.add(root.relativize(file) + ":" + (i + 1) + ": no method " + cls + "." + method);
                    }
                }
            }
        }
        assertTrue(missing.isEmpty(), missing.size() + " cited test(s) do not exist:\n" + String.join("\n", missing));
    }
}
