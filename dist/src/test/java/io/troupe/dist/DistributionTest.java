package io.troupe.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The built distribution ({@code dist/troupe-VERSION/}, made by {@code mvn package}) runs on its own:
 * training in an empty environment on its bundled runtime, which holds every Java module the jars
 * need and is not a JDK. Runs in the dist module's verify phase, after the distribution is built.
 */
@Tag("slow")
class DistributionTest {
    private static final Path DIST = Path.of(System.getProperty("troupe.dist.dir", "troupe-dist-not-built"));

    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void shouldTrainInAnEmptyEnvironmentOnTheBundledRuntime(@TempDir Path work) throws Exception {
        assertTrue(Files.isDirectory(DIST), "no distribution at " + DIST + " (mvn package builds it)");
        Path troupe = DIST.resolve("bin/troupe").toAbsolutePath();
        ProcessBuilder pb = new ProcessBuilder("env", "-i", troupe.toString(), "train", "--model", "tiny",
            "--steps", "5", "--layout", "1x1", "--out", "run").directory(work.toFile()).redirectErrorStream(true);
        pb.environment().clear();
        Process p = pb.start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(200, TimeUnit.SECONDS), "troupe train did not end");
        System.out.print(output);
        assertEquals(0, p.exitValue(), "troupe train failed:\n" + output);
        List<String> rows = Files.readAllLines(work.resolve("run/metrics.csv"));
        assertEquals(6, rows.size(), "header and 5 steps expected in metrics.csv:\n" + rows);
        int loss = Arrays.asList(rows.get(0).split(",")).indexOf("loss");
        assertTrue(loss >= 0, "no loss column in metrics.csv: " + rows.get(0));
        for (String row : rows.subList(1, rows.size())) {
            // An untrained byte-level model starts near ln(256) = 5.55 nats per token.
            double v = Double.parseDouble(row.split(",", -1)[loss]);
            assertTrue(v > 4 && v < 7, "loss out of range for 5 steps of the tiny model: " + row);
        }
        assertTrue(output.contains("step     5/5"), output);
    }

    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void shouldBundleARuntimeWithEveryModuleTheJarsNeedAndNoCompiler() throws Exception {
        Path runtime = DIST.resolve("runtime");
        assertTrue(Files.isExecutable(runtime.resolve("bin/java")), "no bin/java in " + runtime);
        assertFalse(Files.exists(runtime.resolve("bin/javac")), "the bundled runtime should not be a JDK");
        Set<String> bundled = new TreeSet<>();
        for (String line : run(List.of(runtime.resolve("bin/java").toString(), "--list-modules"))) {
            bundled.add(line.split("@")[0].trim());
        }
        List<String> listed = Arrays.asList(System.getProperty("troupe.dist.modules").split(","));
        assertTrue(bundled.containsAll(listed), "the runtime should hold the modules listed in dist/pom.xml "
            + listed + " (and what they require); it holds " + bundled);

        List<String> jars;
        try (Stream<Path> s = Files.list(DIST.resolve("lib"))) {
            jars = s.map(Path::toString).filter(n -> n.endsWith(".jar")).sorted().collect(Collectors.toList());
        }
        Path jdeps = Path.of(System.getProperty("java.home"), "bin", "jdeps");
        List<String> cmd = new ArrayList<>(List.of(jdeps.toString(), "--multi-release", "17", "--ignore-missing-deps",
            "--print-module-deps", "-q", "--class-path", DIST.resolve("lib") + "/*"));
        cmd.addAll(jars);
        List<String> out = run(cmd);
        Set<String> needed = new TreeSet<>(Arrays.asList(out.get(out.size() - 1).trim().split(",")));
        needed.removeAll(bundled);
        assertTrue(needed.isEmpty(), "modules jdeps finds in lib/ but the runtime lacks: " + needed);
    }

    @Test
    void shouldShipTheLauncherConfigAndOneLoggingBinding() throws IOException {
        assertTrue(Files.isExecutable(DIST.resolve("bin/troupe")));
        for (String f : List.of("reference.conf", "local.conf", "multi-host.conf", "examples", "k8s")) {
            assertTrue(Files.exists(DIST.resolve("conf").resolve(f)), "conf/" + f + " missing");
        }
        try (Stream<Path> s = Files.list(DIST.resolve("lib"))) {
            List<String> names = s.map(p -> p.getFileName().toString()).collect(Collectors.toList());
            assertEquals(1, names.stream().filter(n -> n.startsWith("slf4j-simple")).count(), names.toString());
            assertTrue(names.stream().anyMatch(n -> n.startsWith("troupe-actors")), names.toString());
        }
        Path tarball = DIST.resolveSibling(DIST.getFileName() + ".tar.gz");
        assertTrue(Files.size(tarball) > 0, "no " + tarball);
        System.out.printf("distribution: %s, %.1f MB unpacked, %s %.1f MB%n", DIST.getFileName(), sizeBytes(DIST) / 1e6,
            tarball.getFileName(), Files.size(tarball) / 1e6);
    }

    private static long sizeBytes(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
        }
    }

    private static List<String> run(List<String> cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(200, TimeUnit.SECONDS), "did not end: " + cmd);
        assertEquals(0, p.exitValue(), cmd + " failed:\n" + text);
        return text.lines().filter(l -> !l.isBlank()).collect(Collectors.toList());
    }
}
