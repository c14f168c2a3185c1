/**
 * In-memory snapshots of a rank's shard at every commit: double-buffered stores, their wire layout, capture and
 * restore.
 */
package io.troupe.actors.cluster.snapshot;
