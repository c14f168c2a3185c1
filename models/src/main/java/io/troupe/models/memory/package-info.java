/** What a rank keeps in memory and how it trades it: ZeRO stages, recomputation, gradient compression, measured bytes. */
package io.troupe.models.memory;
