/**
 * Test fixtures shared across modules: naive reference ops, seeded random tensors, closeness
 * assertions, a loopback data plane (LoopbackDriver), native test memory and child JVMs, a loopback
 * port that refuses connections (RefusingPort), file states (TestFiles) and live threads by name (LiveThreads).
 */
package io.troupe.runtime.testkit;
