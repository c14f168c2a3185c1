/** What a rank keeps in memory and how it trades it: ZeRO stages, recomputation, compression, measured bytes. */
package io.troupe.models.memory;
