package io.troupe.models.infer;

/** Token embedding rows (V, C), float32 or int8 with one scale per row; a lookup dequantizes one row. */
public final class EmbeddingTable {
    private final float[] fp32;
    private final byte[] q;
    private final float[] scale;
    private final int rows;
    private final int cols;

    private EmbeddingTable(float[] fp32, byte[] q, float[] scale, int rows, int cols) {
        this.fp32 = fp32;
        this.q = q;
        this.scale = scale;
        this.rows = rows;
        this.cols = cols;
    }

    public static EmbeddingTable of(float[] table, int rows, int cols, Quantization quant) {
        if (table.length != rows * cols) {
            throw new IllegalArgumentException("embedding has " + table.length
                + " values, expected " + rows + "x" + cols);
        }
        if (quant == Quantization.NONE) {
            return new EmbeddingTable(table, null, null, rows, cols);
        }
        byte[] q = new byte[table.length];
        float[] s = new float[rows];
        Int8Linear.quantizeRows(table, rows, cols, q, s);
        return new EmbeddingTable(null, q, s, rows, cols);
    }

    /** out[outOff, outOff + C) = row {@code id}. */
    public void lookup(int id, float[] out, int outOff) {
        if (id < 0 || id >= rows) {
            throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + rows + ")");
        }
        if (fp32 != null) {
            System.arraycopy(fp32, id * cols, out, outOff, cols);
        } else {
            float s = scale[id];
            for (int i = 0; i < cols; i++) {
                out[outOff + i] = q[id * cols + i] * s;
            }
        }
    }

    public long weightBytes() {
        return fp32 != null ? 4L * fp32.length : q.length + 4L * scale.length;
    }
}
