/* placeholder: filled by the header tests */
#include "config.h"
#include "test-utils.h"
int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);
  return g_test_run ();
}
