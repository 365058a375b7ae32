# Warnings for every target of the project (third-party headers come in as SYSTEM includes).
add_library(emmcsim_warnings INTERFACE)
target_compile_options(emmcsim_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wformat=2 -Wimplicit-fallthrough
  $<$<BOOL:${EMMCSIM_WERROR}>:-Werror>)

if(EMMCSIM_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()

# ThreadSanitizer, for the code where threads meet (the daemon's servers and their tests).
if(EMMCSIM_SANITIZE_THREAD)
  if(EMMCSIM_SANITIZE)
    message(FATAL_ERROR "EMMCSIM_SANITIZE and EMMCSIM_SANITIZE_THREAD cannot be combined")
  endif()
  # -Wno-tsan: GCC warns that Asio's atomic_thread_fence is invisible to TSan; Asio's scheduler
  # orders handlers with its own mutex, which TSan does see.
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  add_link_options(-fsanitize=thread)
endif()

# libFuzzer needs edge coverage from the libraries too, not only from the harness.
if(EMMCSIM_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
