/** The Aeron data plane: media driver lifecycle, the tensor frame codec, chunked senders and the reassembling receiver agent. */
package io.troupe.runtime.transport;
