package io.troupe.bench;

import java.util.Arrays;
import java.util.List;

/** The median every benchmark reports: the middle value, or the mean of the two middle ones for an even count. */
public final class Median {
    private Median() {
    }

    /** The median of {@code values} (left unchanged); fails on none. */
    public static double of(double... values) {
        if (values.length == 0) {
            throw new IllegalArgumentException("the median of no values: values.length=0");
        }
        double[] v = values.clone();
        Arrays.sort(v);
        int n = v.length;
        return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }

    /** The median of {@code values}; fails on none. */
    public static double of(List<Double> values) {
        return of(values.stream().mapToDouble(Double::doubleValue).toArray());
    }
}
