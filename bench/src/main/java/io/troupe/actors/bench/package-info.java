/** Benchmark mains of the cluster runtime (run by scripts/bench). */
package io.troupe.actors.bench;
