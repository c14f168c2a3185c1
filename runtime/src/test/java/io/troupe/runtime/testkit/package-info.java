/**
 * Test fixtures shared across modules: naive reference ops, seeded random tensors, closeness
 * assertions, a loopback data plane (LoopbackDriver), native test memory and child JVMs, a loopback
 * port that refuses connections (RefusingPort) and file states (TestFiles).
 */
package io.troupe.runtime.testkit;
