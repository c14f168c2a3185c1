package io.troupe.runtime.cuda;

import jcuda.NativePointerObject;
import jcuda.Pointer;

/**
 * Builds the {@code kernelParams} array of one {@code cuLaunchKernel} call, in the kernel's
 * parameter order. Device pointers travel as their raw 64-bit address. JCuda needs a small Java
 * object per argument; that is the only allocation on the launch path.
 */
final class KernelArgs {
    private final NativePointerObject[] slots = new NativePointerObject[20];
    private int count;

    KernelArgs reset() {
        for (int i = 0; i < count; i++) {
            slots[i] = null;
        }
        count = 0;
        return this;
    }

    KernelArgs ptr(long deviceAddress) {
        return add(Pointer.to(new long[] {deviceAddress}));
    }

    KernelArgs i32(int v) {
        return add(Pointer.to(new int[] {v}));
    }

    KernelArgs i64(long v) {
        return add(Pointer.to(new long[] {v}));
    }

    KernelArgs f32(float v) {
        return add(Pointer.to(new float[] {v}));
    }

    private KernelArgs add(Pointer p) {
        slots[count++] = p;
        return this;
    }

    Pointer toParams() {
        NativePointerObject[] a = new NativePointerObject[count];
        System.arraycopy(slots, 0, a, 0, count);
        return Pointer.to(a);
    }
}
