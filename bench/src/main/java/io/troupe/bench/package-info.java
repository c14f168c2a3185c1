/** What every benchmark shares: the median it reports and the byte sizes its options take. */
package io.troupe.bench;
