/** Test fixtures shared across modules: naive reference ops, seeded random tensors, closeness assertions. */
package io.troupe.runtime.testkit;
