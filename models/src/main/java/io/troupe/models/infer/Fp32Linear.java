package io.troupe.models.infer;

/** A float32 {@link LinearWeights}; output channels outer, rows inner, so a weight row is reused from cache. */
public final class Fp32Linear implements LinearWeights {
    private final float[] weight;
    private final float[] bias;
    private final int out;
    private final int in;

    /** @param bias null for none */
    public Fp32Linear(float[] weight, float[] bias, int outFeatures, int inFeatures) {
        if (weight.length != outFeatures * inFeatures) {
            throw new IllegalArgumentException("weight has " + weight.length + " values, expected " + outFeatures + "x" + inFeatures);
        }
        this.weight = weight;
        this.bias = bias;
        this.out = outFeatures;
        this.in = inFeatures;
    }

    @Override
    public int inFeatures() {
        return in;
    }

    @Override
    public int outFeatures() {
        return out;
    }

    @Override
    public void forward(float[] x, int rows, float[] y) {
        for (int j = 0; j < out; j++) {
            float b = bias == null ? 0f : bias[j];
            int wOff = j * in;
            for (int r = 0; r < rows; r++) {
                y[r * out + j] = RowKernels.dot(x, r * in, weight, wOff, in) + b;
            }
        }
    }

    @Override
    public long weightBytes() {
        return 4L * weight.length;
    }
}
