/**
 * The Aeron data plane: media driver lifecycle, the tensor frame codec, chunked senders and the
 * reassembling receiver agent. Bulk bytes between workers of one host skip the Aeron log: one
 * in-process copy between workers of the same JVM ({@link io.troupe.runtime.transport.LocalCopyLink}),
 * a shared-memory ring to workers of other processes ({@link io.troupe.runtime.transport.IpcRing});
 * the frames that announce them still travel, ordered and validated, over Aeron.
 */
package io.troupe.runtime.transport;
