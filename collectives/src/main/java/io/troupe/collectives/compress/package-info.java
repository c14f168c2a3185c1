/** Wire compression of all-reduces: bf16, int8 block quantisation, error-feedback residuals. */
package io.troupe.collectives.compress;
