/** GPT-2 style decoder-only transformer, splittable into pipeline stages by blocks. */
package io.troupe.models.gpt;
