// The page served at `/`: pick or drop an image, choose the model, see the
// overlay, the score and the decision. Its source is src/serve/web/index.html,
// compiled into the program (web_page.cpp.in) so that it needs no files and
// no network at run time.
#pragma once

namespace unetind::serve {

const char* web_page_html();

}  // namespace unetind::serve
