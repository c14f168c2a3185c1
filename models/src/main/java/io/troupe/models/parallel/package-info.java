/** Parallel layouts: dp × pp × tp (× v), rank arithmetic, groups, and the partition of blocks into stages. */
package io.troupe.models.parallel;
