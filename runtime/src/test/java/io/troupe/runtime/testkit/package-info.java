/**
 * Test fixtures shared across modules: naive reference ops, seeded random tensors, closeness
 * assertions, a loopback data plane (LoopbackDriver), native test memory and child JVMs.
 */
package io.troupe.runtime.testkit;
