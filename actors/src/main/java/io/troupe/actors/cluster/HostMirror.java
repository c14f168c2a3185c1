package io.troupe.actors.cluster;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.Tensor;

/**
 * A host float32 copy of a tensor that lives on a GPU, for the parts of a cluster rank that work on
 * CPU memory (the data plane's collectives): {@link #download} copies the
 * device tensor into {@link #host()}, {@link #upload} copies it back, each in one copy between the
 * device's memory and the host tensor's ({@link io.troupe.runtime.device.Device#copyToHost(Tensor, Tensor)}).
 * Over a CPU tensor it is no copy at all: {@link #host()} is that tensor and both transfers do nothing.
 * {@link #ofSize} makes a host copy for whichever device tensor of its size a call names
 * ({@link #downloadFrom}, {@link #uploadTo}).
 *
 * <p>Threading: the worker's device thread, which issues every call of the device tensor's device.
 */
final class HostMirror implements AutoCloseable {
    private final Tensor device;
    private final Tensor host;
    /** Whether {@link #host} is a copy ({@code false} over a CPU tensor, where it is the tensor itself). */
    private final boolean copies;

    private HostMirror(Tensor device, Tensor host, boolean copies) {
        this.device = device;
        this.host = host;
        this.copies = copies;
    }

    /**
     * A mirror of float32 {@code device}: a tensor of {@code hostDevice} of the same size when {@code device} is on a
     * GPU, {@code device} itself when it is a CPU tensor.
     */
    static HostMirror of(Tensor device, CpuDevice hostDevice) {
        if (device.device().kind() == DeviceKind.CPU) {
            return new HostMirror(device, device, false);
        }
        if (device.numel() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("a host mirror holds at most 2^31-1 floats: numel=" + device.numel());
        }
        return new HostMirror(device, hostDevice.allocate((int) device.numel()), true);
    }

    /** A host copy of {@code numel} floats on {@code hostDevice}, for any device tensor of that size. */
    static HostMirror ofSize(long numel, CpuDevice hostDevice) {
        if (numel > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("a host mirror holds at most 2^31-1 floats: numel=" + numel);
        }
        return new HostMirror(null, hostDevice.allocate((int) numel), true);
    }

    /**
     * The mirror of elements {@code [offsetElements, offsetElements + numel)} of the tensor: views of the device tensor
     * and of the host copy over that range, so {@link #download} and {@link #upload} move just those elements. A view
     * of this mirror's memory: closing it frees nothing.
     */
    HostMirror range(long offsetElements, int numel) {
        return new HostMirror(device.view(offsetElements, numel), host.view(offsetElements, numel), copies);
    }

    /** Whether {@link #host()} is a copy (the tensor is on a GPU) rather than the tensor itself. */
    boolean copies() {
        return copies;
    }

    /** The host tensor: the copy, or the CPU tensor itself. */
    Tensor host() {
        return host;
    }

    /** Device to host: waits for the device's work on the tensor, then {@link #host()} holds its values. */
    void download() {
        if (copies) {
            downloadFrom(device);
        }
    }

    /** Host to device: the tensor takes {@link #host()}'s values. */
    void upload() {
        if (copies) {
            uploadTo(device);
        }
    }

    /** {@link #host()} takes the values of GPU tensor {@code t}, of its size, once the device's work on it is done. */
    void downloadFrom(Tensor t) {
        t.device().copyToHost(t, host);
    }

    /** GPU tensor {@code t}, of its size, takes {@link #host()}'s values, before any call issued after this one. */
    void uploadTo(Tensor t) {
        t.device().copyFromHost(host, t);
    }

    /** Frees the copy (not the mirrored tensor); a {@link #range} frees nothing. */
    @Override
    public void close() {
        if (copies) {
            host.close();
        }
    }
}
