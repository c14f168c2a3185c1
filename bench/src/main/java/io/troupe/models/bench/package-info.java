/**
 * Benchmark mains (run by scripts/bench), each printing a ratio to a baseline measured in the same run or on this
 * machine.
 */
package io.troupe.models.bench;
