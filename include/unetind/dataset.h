// Datasets as lists of (image, mask, defective) samples, SPEC.md section 3.
// Listing only checks that files exist; pixels are read by the Loader
// (loader.h). Every error names the folder, file or file:line that is wrong.
#pragma once
#include <string>
#include <vector>

namespace unetind {

struct Sample {
  std::string image_path;
  std::string mask_path;  // empty: no label file, the mask is all zero
  bool defective = false;
};

enum class Split { Train, Test };
std::string to_string(Split s);  // "Train" | "Test" (the DAGM folder names)

struct DatasetOptions {
  // Skip listed images whose file is missing instead of failing: for partial
  // copies of a split (such as the few real images under shared/fixtures).
  bool skip_missing = false;
};

// One split of one DAGM class. `root` is the folder that holds ClassN/, or
// ClassN itself. Sources, first found wins:
//  1. ClassN/train_list.csv | test_list.csv (NVIDIA's preprocessing, header
//     `image_filepath,lbl_image_filepath,is_defective`). Relative image paths
//     are taken from ClassN/<Split>/ and label paths from ClassN/<Split>/Label/
//     as NVIDIA's loader does, falling back to ClassN/; absolute paths as is.
//  2. ClassN/<Split>/Label/Labels.txt (the DAGM list, CRLF or LF).
//  3. Neither: every image in ClassN/<Split>/ (*.PNG, or any format that
//     image_io.h reads), defective when Label/<stem>_label.<ext> exists (how
//     NVIDIA's preprocessing decides).
// Images on disk that the list does not name are ignored. A defective entry
// whose label file is missing is always an error. Sorted by image file name.
std::vector<Sample> load_dagm_split(const std::string& root, int class_id, Split split,
                                    const DatasetOptions& options = {});

// The public MPI release: ClassN/*.png are defect-free, ClassN_def/*.png are
// defective. It has no Train/Test split, and its labels are ellipse parameters
// (ClassN_def/labels.txt) whose axis and angle conventions we cannot verify
// against reference masks, so no masks are produced: every mask_path is empty
// and these samples suit image-level evaluation only, not segmentation
// training or pixel metrics. Sorted: defect-free first, then defective, each
// by file name.
std::vector<Sample> load_dagm_public(const std::string& root, int class_id);

// Reads every image's PNG header and every mask, so that a run can refuse
// bad data before it starts: a file that is no readable PNG, an image over
// the pixel limit (png.h), a mask of another size than its image, or a mask
// whose values are only 0 and 1 (SPEC.md divides masks by 255, which makes
// those all but empty: scale them to 0/255) is an Error naming the file.
// Returns a warning naming the defective samples whose mask is all zero
// (they count as defect-free), or "" when there are none.
std::string check_samples(const std::vector<Sample>& samples);

// A generic folder: the images in dir/images/ (any format image_io.h reads,
// any letter case). The mask of images/X.<ext> is masks/X.<ext2> or
// masks/X_label.<ext2>, of any format too; no mask file means
// defect-free. An image is defective when its mask has any non-zero pixel
// (masks are read here for that). Sorted by image file name.
std::vector<Sample> load_folder_dataset(const std::string& dir);

}  // namespace unetind
