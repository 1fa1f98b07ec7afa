from sptui.cli import main

raise SystemExit(main())
