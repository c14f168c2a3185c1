/** Communicators and collective algorithms over the Aeron data plane. No Pekko, no model code. */
package io.troupe.collectives;
