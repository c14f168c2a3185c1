package io.troupe.models.data;

/**
 * The 64-bit linear congruential generator every deterministic recipe in Troupe uses
 * (Knuth's MMIX constants): {@code state = state * A + C mod 2^64}, output {@code state >>> 32}.
 * {@link #skip(long)} jumps ahead in O(log n), so a shard can start mid-stream without replaying.
 */
public final class Lcg {
    public static final long MULTIPLIER = 6364136223846793005L;
    public static final long INCREMENT = 1442695040888963407L;

    private long state;

    public Lcg(long seed) {
        this.state = seed;
    }

    /** Next 32-bit output as a non-negative long in [0, 2^32). */
    public long nextU32() {
        state = state * MULTIPLIER + INCREMENT;
        return state >>> 32;
    }

    /** Uniform in [0, 1) with 24 bits: {@code (nextU32() >>> 8) * 2^-24}. */
    public double uniform01() {
        return (nextU32() >>> 8) * 0x1.0p-24;
    }

    /** Advances the state by {@code n} draws without producing them. */
    public void skip(long n) {
        long mul = 1;
        long add = 0;
        long curMul = MULTIPLIER;
        long curAdd = INCREMENT;
        long k = n;
        while (k != 0) {
            if ((k & 1) != 0) {
                mul *= curMul;
                add = add * curMul + curAdd;
            }
            curAdd = (curMul + 1) * curAdd;
            curMul *= curMul;
            k >>>= 1;
        }
        state = state * mul + add;
    }
}
