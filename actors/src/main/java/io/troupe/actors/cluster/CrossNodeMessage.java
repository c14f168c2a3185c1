package io.troupe.actors.cluster;

/**
 * Marker of every message that may cross nodes. It is bound to {@link TroupeKryoSerializer}; each
 * implementing class must be listed in {@link KryoRegistrar} (registration is required, so an
 * unknown class is refused rather than instantiated). Tensors never travel in these messages.
 */
public interface CrossNodeMessage {
}
