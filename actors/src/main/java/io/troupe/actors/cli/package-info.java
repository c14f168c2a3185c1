/** The {@code troupe} command line: train, simulate and (with the cluster runtime) node. */
package io.troupe.actors.cli;
