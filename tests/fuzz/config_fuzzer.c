/*
 * libFuzzer target for the configuration parser.  config_parse() must
 * accept any bytes, never read past len, and either return a config or set
 * a one-line "name:line: message".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtconsoled.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*cfg;
	char		 err[256];

	err[0] = 'x';
	cfg = config_parse("fuzz.conf", (const char *)data, size, err,
	    sizeof err);
	if (cfg == NULL) {
		/* An error must always be reported, and on one line. */
		if (strncmp(err, "fuzz.conf:", 10) != 0 ||
		    strchr(err, '\n') != NULL)
			abort();
	}
	config_free(cfg);
	return 0;
}
