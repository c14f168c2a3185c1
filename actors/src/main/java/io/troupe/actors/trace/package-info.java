/**
 * A neutral timeline model (tracks of named intervals) and its writers: Chrome trace JSON for
 * Perfetto and an SVG Gantt chart; used by the pipeline simulator and, later, the live runtime.
 */
package io.troupe.actors.trace;
