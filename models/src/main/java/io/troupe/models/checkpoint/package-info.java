/** The checkpoint format: shard files plus a manifest.json that is the commit point. */
package io.troupe.models.checkpoint;
