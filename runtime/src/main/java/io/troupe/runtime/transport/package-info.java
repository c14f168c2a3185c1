/**
 * The Aeron data plane: media driver lifecycle, the tensor frame codec, chunked senders and the
 * reassembling receiver agent. Bulk bytes between workers of one host skip the Aeron log: one
 * in-process copy between workers of the same JVM ({@link io.troupe.runtime.transport.LocalCopyLink}),
 * a shared-memory ring to workers of other processes ({@link io.troupe.runtime.transport.IpcRing});
 * the frames that announce them still travel, ordered and validated, over Aeron.
 *
 * <p>A frame the receiver refuses is dropped and counted by reason ({@link io.troupe.runtime.transport.DropReason});
 * when it was well formed (a stale epoch after a restart, say) the ring bytes or in-process tensor it
 * points at are handed back unread, so its sender finishes instead of waiting out its deadline. Lost UDP
 * packets are Aeron's to repair (NAK and retransmit): they cost time, never bytes ({@code UdpLossTest}).
 */
package io.troupe.runtime.transport;
