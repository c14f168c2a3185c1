package io.troupe.models.gpt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.ParamSpec;
import io.troupe.models.memory.GradientArena;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link GptGradientArena}: buckets that end inside a weight keep the window at the bucket size
 * (not the largest linear), and the pieces cover every gradient element exactly once, resident
 * ones in the resident region, each bucket's pieces disjoint in the window, every row block whole rows.
 */
class GptGradientArenaTest {
    @Test
    void shouldKeepTheWindowAtTheBucketSizeByCuttingLargeWeightsIntoRowBlocks() {
        GptConfig cfg = GptConfig.big();
        for (boolean[] ends : new boolean[][] {{true, true}, {true, false}, {false, true}}) {
            int firstBlock = ends[0] ? 0 : 3;
            int endBlock = ends[1] ? cfg.nLayer() : 3;
            ParameterLayout layout = ParameterLayout.stage(cfg, firstBlock, endBlock, ends[0], ends[1]);
            long bucket = layout.numel() / 32;
            long largest = layout.specs().stream().mapToLong(ParamSpec::numel).max().orElseThrow();
            assertTrue(largest > bucket, "the test needs a linear larger than a bucket");
            assertTrue(layout.get("blocks." + firstBlock + ".mlp.fc.weight").numel() > bucket, "and cuts one");
            GradientArena arena = GptGradientArena.of(layout, firstBlock, endBlock - firstBlock, ends[0], ends[1],
                bucket);
            System.out.printf("big blocks %d..%d: stage %d floats, bucket %d, window %d, largest parameter %d, "
                + "%d buckets, %d pieces%n", firstBlock, endBlock, layout.numel(), bucket, arena.bucketElements(),
                largest, arena.buckets().length, arena.pieces().size());
            // Embeddings stay whole: the first stage's window may be their size.
            long embeddings = ends[0] ? layout.get("tok_emb.weight").numel() + layout.get("pos_emb.weight").numel() : 0;
            assertTrue(arena.bucketElements() <= Math.max(bucket, embeddings), "window " + arena.bucketElements()
                + " > bucket " + bucket);
            check(layout, arena);
        }
    }

    private static void check(ParameterLayout layout, GradientArena arena) {
        List<ParamSpec> specs = layout.specs();
        long[] covered = new long[specs.size()];
        boolean[] inBucket = new boolean[arena.pieces().size()];
        for (int k : arena.resident()) {
            GradientArena.Piece p = arena.pieces().get(k);
            assertEquals(specs.get(p.parameter()).numel(), p.elements(), "resident pieces are whole parameters");
            assertTrue(p.arenaOffset() + p.elements() <= arena.residentElements());
            covered[p.parameter()] += p.elements();
            inBucket[k] = true;
        }
        for (int[] bucket : arena.buckets()) {
            boolean[] used = new boolean[(int) arena.bucketElements()];
            for (int k : bucket) {
                GradientArena.Piece p = arena.pieces().get(k);
                ParamSpec s = specs.get(p.parameter());
                if (p.elements() != s.numel()) {
                    int width = s.shape()[1];
                    assertEquals(0, p.firstElement() % width, s.name() + ": whole rows");
                    assertEquals(0, p.elements() % width, s.name() + ": whole rows");
                }
                for (long e = p.arenaOffset(); e < p.arenaOffset() + p.elements(); e++) {
                    int w = (int) (e - arena.residentElements());
                    assertTrue(!used[w], "window element " + w + " used twice in a bucket");
                    used[w] = true;
                }
                covered[p.parameter()] += p.elements();
                assertTrue(!inBucket[k], "piece " + k + " in two buckets");
                inBucket[k] = true;
            }
        }
        for (int i = 0; i < specs.size(); i++) {
            assertEquals(specs.get(i).numel(), covered[i], specs.get(i).name() + " covered once");
        }
        for (boolean b : inBucket) {
            assertTrue(b, "every piece resident or in a bucket");
        }
    }
}
