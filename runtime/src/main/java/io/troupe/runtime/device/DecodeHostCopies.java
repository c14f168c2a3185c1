package io.troupe.runtime.device;

import io.troupe.runtime.tensor.Tensor;

/** Host copies of the first elements of a tensor, for the decoding ops' default (reference) forms. */
final class DecodeHostCopies {
    private DecodeHostCopies() {
    }

    static float[] read(Device device, Tensor t, long elements, String what) {
        if (t.numel() < elements || elements > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(what + " too small or too large: needs " + elements + " elements, has "
                + t.numel());
        }
        float[] out = new float[(int) elements];
        device.copyToHost(t.view(0, (int) elements), out);
        return out;
    }
}
