package io.troupe.runtime.cuda;

import jcuda.Pointer;

/**
 * A JCuda {@link Pointer} at a raw host address: the memory of a host tensor (CPU storage or a pinned
 * buffer), which the driver's copies read and write in place. It holds no reference to that memory: the
 * tensor's owner keeps it open until the copy has completed.
 */
final class HostPointer extends Pointer {

    HostPointer(long address) {
        super(address);
    }
}
