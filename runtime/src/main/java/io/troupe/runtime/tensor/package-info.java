/** Tensors: typed, shaped views over device storage, and the storage itself. */
package io.troupe.runtime.tensor;
