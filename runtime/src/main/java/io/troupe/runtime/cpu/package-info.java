/** The CPU backend: off-heap tensors, OpenBLAS gemm, multithreaded Java loops for the rest. */
package io.troupe.runtime.cpu;
