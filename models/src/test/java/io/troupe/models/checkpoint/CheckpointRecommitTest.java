package io.troupe.models.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import io.troupe.runtime.testkit.TestFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Committing a step that already has a checkpoint replaces it whole: the old directory is renamed
 * aside before the new one takes the final name, so a crash at any point leaves a complete
 * checkpoint of the step (the old or the new), never a manifest whose shards were deleted.
 */
@Timeout(60)
class CheckpointRecommitTest {
    private static final GptConfig CFG = new GptConfig("t", 64, 32, 2, 4, 8, 1e-5f);
    private static final String SHARD = "shard-00.bin";

    @TempDir
    Path root;

    private Path write(long step, float value) {
        ShardState s = new ShardState(step);
        s.put(new ShardState.Entry("w", new int[] {4}, new float[] {value, value, value, value}, new float[4],
            new float[4]));
        Manifest m = new Manifest(Manifest.FORMAT, step, step, 1, 4, "1x1x1", CFG, "markov", List.of());
        return Checkpoints.write(root, m, Map.of(SHARD, s));
    }

    private static float valueOf(Checkpoints.Loaded l) {
        return l.shards().get(SHARD).entries().get("w").param()[0];
    }

    private List<String> names() throws IOException {
        try (var s = Files.list(root)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void shouldLoadTheSecondCommitOfAStepAndLeaveNothingAside() throws IOException {
        write(4, 1f);
        write(5, 2f);
        Path again = write(5, 3f);
        assertEquals(Checkpoints.dirFor(root, 5), again);
        Checkpoints.Loaded l = Checkpoints.load(Checkpoints.resolve(root));
        assertEquals(5, l.manifest().step());
        assertEquals(3f, valueOf(l), "the second commit of the step is the one loaded");
        assertEquals(List.of("step-00000004", "step-00000005"), names());
    }

    /** A crash between the two renames: the old checkpoint is aside, the new one still temporary. */
    @Test
    void shouldTakeTheAsideCheckpointWhileItsFinalNameIsMissing() throws IOException {
        write(4, 1f);
        Path fin = write(5, 2f);
        Path aside = root.resolve("step-00000005.old");
        Files.move(fin, aside);
        TestFiles.copyTree(aside, root.resolve("step-00000005.tmp"));

        Path found = Checkpoints.resolve(root);
        Checkpoints.Loaded l = Checkpoints.load(found);
        assertEquals(5, l.manifest().step());
        assertEquals(2f, valueOf(l), "the complete old checkpoint of the step");

        Checkpoints.discardPartial(root, 5);
        assertEquals(List.of("step-00000004", "step-00000005"), names(), "put back under its final name");
        assertEquals(2f, valueOf(Checkpoints.load(Checkpoints.resolve(root))));
        assertEquals(3f, valueOf(Checkpoints.load(write(5, 3f))));
        assertEquals(List.of("step-00000004", "step-00000005"), names());
    }

    /** A crash while the aside copy was being deleted: its shard is gone, its manifest not yet. */
    @Test
    void shouldIgnoreAStaleAsideCopyAndDeleteItOnTheNextWrite() throws IOException {
        write(5, 2f);
        Path aside = root.resolve("step-00000005.old");
        TestFiles.copyTree(Checkpoints.dirFor(root, 5), aside);
        Files.delete(aside.resolve(SHARD));
        write(4, 1f);

        Path found = Checkpoints.resolve(root);
        assertEquals(Checkpoints.dirFor(root, 5), found, "the final directory, not the stale copy");
        assertEquals(2f, valueOf(Checkpoints.load(found)));

        Path again = write(5, 3f);
        assertEquals(3f, valueOf(Checkpoints.load(again)));
        assertFalse(Files.exists(aside), "the stale copy was deleted");
        assertTrue(Files.isRegularFile(again.resolve(SHARD)));
        float[] v = Checkpoints.load(Checkpoints.resolve(root)).shards().get(SHARD).entries().get("w").param();
        assertArrayEquals(new float[] {3f, 3f, 3f, 3f}, v);
    }

    /**
     * The aside copy cannot be deleted (a file in it that even root cannot delete: {@code chattr +i}): the
     * re-commit still succeeds, the new checkpoint is the step's, and the copy goes at the step's next write.
     */
    @Test
    void shouldCommitAStepWhoseAsideCopyCannotBeDeleted() throws Exception {
        Path fin = write(5, 2f);
        Path blocker = fin.resolve("blocker");
        Files.writeString(blocker, "an undeletable file");
        Path asideBlocker = root.resolve("step-00000005.old").resolve("blocker");
        org.junit.jupiter.api.Assumptions.assumeTrue(TestFiles.chattr("+i", blocker),
            "chattr +i is not supported here: cannot make the aside copy undeletable");
        try {
            assertEquals(fin, write(5, 3f), "the re-commit succeeds");
            assertTrue(Files.exists(asideBlocker), "the copy is still aside");
            assertEquals(fin, Checkpoints.resolve(root));
            assertEquals(3f, valueOf(Checkpoints.load(fin)));
        } finally {
            TestFiles.chattr("-i", asideBlocker);
            TestFiles.chattr("-i", blocker);
        }
        assertEquals(4f, valueOf(Checkpoints.load(write(5, 4f))));
        assertEquals(List.of("step-00000005"), names(), "the copy went at the next write");
    }
}
