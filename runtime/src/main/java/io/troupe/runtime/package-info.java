/** Troupe's runtime: tensors, devices, the Aeron data plane and settings. */
package io.troupe.runtime;
