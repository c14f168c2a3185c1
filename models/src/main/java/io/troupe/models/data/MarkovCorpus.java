package io.troupe.models.data;

/**
 * The built-in corpus: an order-2 Markov byte stream over a 32-letter alphabet, generated from
 * seeds, so training needs no file. Its entropy rate (~1.156 nats/token for the default seeds) is
 * the floor a model can reach; unigram entropy is ~3.46 and uniform over 256 bytes 5.545.
 *
 * <p>Recipe (the same as the parity golden file's): a table of 4 candidate successors per
 * (previous, current) pair drawn with {@code LCG(tableSeed).nextU32() >>> 27}; the stream draws
 * {@code r = nextU32() >>> 29} and picks candidate {@code [0,0,0,0,1,1,2,3][r]}.
 */
public final class MarkovCorpus {
    public static final String ALPHABET = "abcdefghijklmnopqrstuvwxyz .,;!?";
    public static final long DEFAULT_TABLE_SEED = 1;
    public static final long DEFAULT_TRAIN_SEED = 2;
    public static final long DEFAULT_VAL_SEED = 3;
    public static final int DEFAULT_TRAIN_LENGTH = 1 << 20;
    public static final int DEFAULT_VAL_LENGTH = 1 << 16;

    private static final int[] PICK = {0, 0, 0, 0, 1, 1, 2, 3};

    private MarkovCorpus() {
    }

    /** The 32x32x4 successor table, row {@code 32*i+j}. */
    public static int[][] table(long tableSeed) {
        Lcg g = new Lcg(tableSeed);
        int[][] cand = new int[1024][4];
        for (int c = 0; c < 1024; c++) {
            for (int k = 0; k < 4; k++) {
                cand[c][k] = (int) (g.nextU32() >>> 27);
            }
        }
        return cand;
    }

    /** Generates {@code length} bytes of the stream for {@code seed}. */
    public static byte[] stream(long tableSeed, long seed, int length) {
        int[][] cand = table(tableSeed);
        Lcg g = new Lcg(seed);
        byte[] out = new byte[length];
        int i = 0;
        int j = 0;
        for (int n = 0; n < length; n++) {
            int r = (int) (g.nextU32() >>> 29);
            int s = cand[32 * i + j][PICK[r]];
            out[n] = (byte) ALPHABET.charAt(s);
            i = j;
            j = s;
        }
        return out;
    }

    /** The default training split. */
    public static TokenStream defaultTrain() {
        return new TokenStream(stream(DEFAULT_TABLE_SEED, DEFAULT_TRAIN_SEED, DEFAULT_TRAIN_LENGTH),
            "built-in Markov corpus (train, " + DEFAULT_TRAIN_LENGTH + " tokens)");
    }

    /** The default validation split (an independent stream from the same table). */
    public static TokenStream defaultVal() {
        return new TokenStream(stream(DEFAULT_TABLE_SEED, DEFAULT_VAL_SEED, DEFAULT_VAL_LENGTH),
            "built-in Markov corpus (val, " + DEFAULT_VAL_LENGTH + " tokens)");
    }
}
