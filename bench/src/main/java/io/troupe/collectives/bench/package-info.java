/** The collectives benchmark: ranks as separate processes on this machine, an nccl-tests style table. */
package io.troupe.collectives.bench;
