#include "cli.h"
int sl_cmd_work(int argc, char **argv) { (void)argc; (void)argv; return SL_EXIT_USAGE; }
