/** Starting child JVMs of Troupe (benchmark ranks, test nodes) with this JVM's classpath and module flags. */
package io.troupe.runtime.launch;
