/** The device abstraction: the kernel set a transformer needs, implemented by the CPU and CUDA backends. */
package io.troupe.runtime.device;
