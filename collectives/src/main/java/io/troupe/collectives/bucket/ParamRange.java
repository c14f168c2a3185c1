package io.troupe.collectives.bucket;

/**
 * One parameter's gradient: a flat range of the gradient buffer.
 *
 * @param name           for messages
 * @param offsetElements first float of the range in the buffer
 * @param numel          floats in the range
 */
public record ParamRange(String name, long offsetElements, long numel) {
    public ParamRange {
        if (offsetElements < 0 || numel < 1) {
            throw new IllegalArgumentException("parameter range must be non-negative and non-empty: name=" + name
                + ", offsetElements=" + offsetElements + ", numel=" + numel);
        }
    }

    public long endElements() {
        return offsetElements + numel;
    }
}
