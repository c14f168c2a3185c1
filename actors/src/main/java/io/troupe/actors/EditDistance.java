package io.troupe.actors;

/**
 * The edit distance of two names (the fewest insertions, deletions and replacements of a character that turn one
 * into the other), for the "nearest known name" of a message refusing a misspelt option, field or key.
 */
public final class EditDistance {
    private EditDistance() {
    }

    /** The edit distance of {@code a} and {@code b}: 0 for equal names, at most the longer one's length. */
    public static int of(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int replace = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(replace, Math.min(prev[j], cur[j - 1]) + 1);
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }
}
