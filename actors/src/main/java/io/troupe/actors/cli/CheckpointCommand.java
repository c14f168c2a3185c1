package io.troupe.actors.cli;

import io.troupe.actors.cluster.JobRecord;
import io.troupe.models.checkpoint.CheckpointDiff;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.Manifest;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code troupe checkpoint ls DIR}: every checkpoint under DIR (step, layout, model, size, valid or
 * why not) and the job record when there is one; {@code troupe checkpoint diff A B}: per tensor (parameters,
 * moments, other files' tensors) the largest absolute and relative difference, then the training state of both
 * ({@link CheckpointDiff}), last line {@code bitwise=.. max_abs=.. max_rel=..}.
 * Exit codes: 0 done, 2 usage (a path that is not a directory), 4 a checkpoint that cannot be read ({@code ls}: one
 * it listed invalid, or the job record unreadable; the listing is printed in full either way). Numbers are written
 * in {@link Locale#ROOT}, whatever the JVM's locale.
 */
final class CheckpointCommand {
    private CheckpointCommand() {
    }

    /** The exit code of a checkpoint that cannot be read (ls: one listed invalid, or the job record unreadable). */
    static final int UNREADABLE = 4;

    static final String USAGE = """
        usage: troupe checkpoint ls DIR        checkpoints under DIR (a run, its checkpoints/ or one step-N): step,
                                                layout, model, bytes, valid or why not; the job record if any
               troupe checkpoint diff A B      per-tensor max abs and max rel difference of two checkpoints
                                                (each a step-N directory or a directory holding them: the latest):
                                                parameters, AdamW moments (.m, .v), other files' tensors, tp
                                                shards joined; then the state (step, data cursor, seed, optimizer
                                                step, ...); last line: bitwise=true|false max_abs=.. max_rel=..
                                                (true only when every tensor and state value is the same)
        Exit codes: 0 done (ls: every checkpoint listed is valid, none listed too, which it says; uncommitted
        and superseded copies are never used and do not count), 2 usage (a DIR, A or B that is missing, a file,
        or a link to neither), 4 a checkpoint that cannot be read (ls: one it listed is invalid, or the job
        record is unreadable; diff: A or B holds no committed checkpoint, or one that is damaged).""";

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0) {
            throw new UsageException("expected 'ls DIR' or 'diff A B' (troupe checkpoint --help)");
        }
        switch (args[0]) {
            case "ls" -> {
                if (args.length != 2) {
                    throw new UsageException("ls takes one directory, got "
                        + Options.count(args.length - 1, "argument", "arguments"));
                }
                return ls(directory("", args[1]), out);
            }
            case "diff" -> {
                if (args.length != 3) {
                    throw new UsageException("diff takes two checkpoints, got "
                        + Options.count(args.length - 1, "argument", "arguments"));
                }
                return diff(directory("A: ", args[1]), directory("B: ", args[2]), out, err);
            }
            default -> throw new UsageException("unknown checkpoint command '" + args[0] + "': expected ls or diff");
        }
    }

    /**
     * The directory {@code --checkpoint} names (a run directory, its {@code checkpoints} or one step's). One that
     * does not exist is bad input, exit 2 as for every other bad path; exit 4 stays for a checkpoint that is there
     * and cannot be used.
     */
    static Path existingDirectory(String option, String value) {
        return directory(option + ": ", value);
    }

    /**
     * {@code value} as a directory that exists (a symbolic link to one is followed), else a usage error (exit 2)
     * that starts with {@code prefix}, names the value and says what it is instead: missing, a file, or a link
     * whose target is missing.
     */
    static Path directory(String prefix, String value) {
        Path dir = Path.of(value);
        if (Files.isDirectory(dir)) {
            return dir;
        }
        String expected = " (expected a run directory or a checkpoint)";
        if (Files.isSymbolicLink(dir)) {
            String target;
            try {
                target = Files.readSymbolicLink(dir).toString();
            } catch (IOException e) {
                target = "?";
            }
            throw new UsageException(prefix + "'" + dir + "' is a symbolic link to '" + target + "', which is not a"
                + " directory (missing, a file, or a loop of links)" + expected);
        }
        if (Files.exists(dir)) {
            throw new UsageException(prefix + "'" + dir + "' is a file, not a directory" + expected);
        }
        throw new UsageException(prefix + "no such directory '" + dir + "'" + expected);
    }

    private static int ls(Path dir, PrintStream out) {
        Path root = Files.isDirectory(dir.resolve("checkpoints")) ? dir.resolve("checkpoints") : dir;
        List<Path> steps = new ArrayList<>();
        if (Files.isRegularFile(root.resolve(Checkpoints.MANIFEST))) {
            steps.add(root);
        } else {
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(root, "step-*")) {
                ds.forEach(steps::add);
            } catch (IOException e) {
                throw new UsageException("cannot list '" + root + "': " + e.getMessage());
            }
        }
        steps.sort(null);
        int code = 0;
        out.printf(Locale.ROOT,
            "%-22s %8s %-8s %-8s %12s  %s%n", "checkpoint", "step", "layout", "model", "bytes", "status");
        for (Path p : steps) {
            String name = p.getFileName().toString();
            long bytes = sizeOf(p);
            if (name.endsWith(".tmp")) {
                out.printf(Locale.ROOT,
                    "%-22s %8s %-8s %-8s %12d  uncommitted (no manifest: a checkpoint cut short, never used)%n",
                    name, "-", "-", "-", bytes);
                continue;
            }
            boolean aside = name.endsWith(".old");
            if (aside && Files.exists(p.resolveSibling(name.substring(0, name.length() - ".old".length())))) {
                out.printf(Locale.ROOT,
                    "%-22s %8s %-8s %-8s %12d  superseded (the copy a re-commit of the step replaced; "
                    + "never used, deleted when the step is next written)%n", name, "-", "-", "-", bytes);
                continue;
            }
            String asideNote = aside ? "; the step's checkpoint while a re-commit cut short left its final name "
                + "missing (used as the step, put back under that name on resume)" : "";
            try {
                Manifest m = Checkpoints.verify(p);
                out.printf(Locale.ROOT,
                    "%-22s %8d %-8s %-8s %12d  valid (%d shards, CRC32C checked)%s%n", name, m.step(),
                    m.layout(), m.model().name(), bytes, m.files().size(), asideNote);
            } catch (CheckpointException e) {
                out.printf(Locale.ROOT,
                    "%-22s %8s %-8s %-8s %12d  invalid: %s%n", name, "-", "-", "-", bytes, e.getMessage());
                code = UNREADABLE;
            }
        }
        JobRecord rec = null;
        try {
            rec = JobRecord.read(root);
        } catch (CheckpointException e) {
            out.println("job record: unreadable: " + e.getMessage());
            code = UNREADABLE;
        }
        if (steps.isEmpty() && rec == null) {
            out.println("no checkpoint under '" + dir + "': no step-N directory, no " + Checkpoints.MANIFEST + ", no "
                + JobRecord.FILE + " (expected a run directory, its checkpoints/ or one step-N)");
        }
        if (rec != null) {
            out.printf(Locale.ROOT,
                "job record: %s, %s, layout %s x %d micro-batches, last committed step %d, %d restart(s)%n",
                rec.identity(), rec.state().name().toLowerCase(Locale.ROOT), rec.layout(), rec.microbatches(),
                rec.lastCommittedStep(), rec.restarts());
            for (JobRecord.Fault f : rec.faults()) {
                out.println("  fault: " + f);
            }
        }
        return code;
    }

    private static int diff(Path a, Path b, PrintStream out, PrintStream err) {
        CheckpointDiff.Result r;
        try {
            r = CheckpointDiff.of(a, b);
        } catch (CheckpointException e) {
            err.println("troupe checkpoint: " + e.getMessage());
            return UNREADABLE;
        }
        out.printf(Locale.ROOT, "A: step %d (%s)%nB: step %d (%s)%n", r.stepA(), a, r.stepB(), b);
        out.printf(Locale.ROOT, "%-40s %10s %12s %12s  %s%n", "tensor", "numel", "max_abs", "max_rel", "bitwise");
        for (CheckpointDiff.Entry e : r.entries()) {
            out.printf(Locale.ROOT, "%-40s %10d %12s %12s  %s%n", e.name(), e.numel(),
                CheckpointDiff.format(e.maxAbs()), CheckpointDiff.format(e.maxRel()), e.bitwise());
        }
        for (String n : r.onlyInFirst()) {
            out.println(n + ": only in A");
        }
        for (String n : r.onlyInSecond()) {
            out.println(n + ": only in B");
        }
        if (r.entries().isEmpty()) {
            out.println("no tensor in both checkpoints: nothing compared");
        }
        for (CheckpointDiff.State s : r.state()) {
            out.printf(Locale.ROOT,
                "state %-15s %s%n", s.name(), s.same() ? s.a() + " (same)" : "A " + s.a() + ", B " + s.b()
                + (s.counts() ? " (differs)" : " (differs: a description, not compared)"));
        }
        for (String p : r.problems()) {
            out.println("inconsistent: " + p);
        }
        out.println(r.summary());
        return 0;
    }

    private static long sizeOf(Path p) {
        try (var walk = Files.walk(p)) {
            return walk.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
        } catch (IOException e) {
            return -1;
        }
    }
}
