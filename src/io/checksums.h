// Whether the readers compare stored checksums (TF bundles' crc32c, PNG
// chunk CRCs) with the data: always, except in the fuzz harnesses, which
// turn it off (when fuzzing and when replaying their regressions alike) so
// that mutated inputs reach the parsers behind the checks.
#pragma once

namespace unetind::checksums {

void set_checked(bool checked);
bool checked();

}  // namespace unetind::checksums
