/** Benchmark mains for the CUDA backend (GEMM throughput against the card's ceiling). */
package io.troupe.runtime.cuda.bench;
